// Throwaway program that produced the vectors of sdkvector_test.go; see there.
module sdkvec

go 1.26

require github.com/huaweicloud/huaweicloud-sdk-go-v3 v0.1.207
