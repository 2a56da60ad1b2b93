package storecopy

import (
	"fmt"
	"time"
)

// kind is how a column's values are represented between the two engines:
// a neutral Go value on the way (string, int64, bool, []byte, time.Time),
// each engine's own form in its tables (SQLite keeps times as INTEGER Unix
// microseconds and booleans as 0 or 1).
type kind int

const (
	kText kind = iota
	kJSON
	kInt
	kBool
	kBytes
	kTime
)

// kindOf maps a PostgreSQL data type (information_schema.columns.data_type)
// to its kind. A type the copier does not know is an error, not a guess.
func kindOf(pgType string) (kind, error) {
	switch pgType {
	case "text", "character varying":
		return kText, nil
	case "json", "jsonb":
		return kJSON, nil
	case "bigint", "integer", "smallint":
		return kInt, nil
	case "boolean":
		return kBool, nil
	case "bytea":
		return kBytes, nil
	case "timestamp with time zone":
		return kTime, nil
	}
	return 0, fmt.Errorf("PostgreSQL type %q is not one the copier converts", pgType)
}

// empty is the value a reset column gets: NULL where allowed.
func (k kind) empty(nullable bool) any {
	if nullable {
		return nil
	}
	switch k {
	case kInt:
		return int64(0)
	case kBool:
		return false
	case kBytes:
		return []byte{}
	case kTime:
		return time.UnixMicro(0).UTC()
	}
	return ""
}

// fromSQLite turns a value read from SQLite into the neutral value.
func (k kind) fromSQLite(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch k {
	case kText, kJSON:
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	case kInt:
		if x, ok := v.(int64); ok {
			return x, nil
		}
	case kBool:
		if x, ok := v.(int64); ok {
			return x != 0, nil
		}
	case kBytes:
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case kTime:
		if x, ok := v.(int64); ok {
			return time.UnixMicro(x).UTC(), nil
		}
	}
	return nil, fmt.Errorf("unexpected SQLite value of type %T", v)
}

// toSQLite turns a neutral value into what SQLite stores.
func toSQLite(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UnixMicro()
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	}
	return v
}

// pgScanTarget returns a destination for one PostgreSQL column of kind k
// and a function that reads the neutral value out of it after Scan.
func (k kind) pgScanTarget() (dest any, value func() any) {
	switch k {
	case kInt:
		var p *int64
		return &p, func() any { return deref(p) }
	case kBool:
		var p *bool
		return &p, func() any { return deref(p) }
	case kBytes:
		var b []byte
		return &b, func() any {
			if b == nil {
				return nil
			}
			return b
		}
	case kTime:
		var p *time.Time
		return &p, func() any {
			if p == nil {
				return nil
			}
			return p.UTC()
		}
	}
	var p *string
	return &p, func() any { return deref(p) }
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
