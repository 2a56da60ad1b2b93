package main

import (
	"math"
	"testing"
)

func TestMergePhases(t *testing.T) {
	a := &Phase{Sent: 100, Acked: 100, Delivered: 100, LoadSec: 10, IngestRate: 10, DeliveryRate: 10, DeliveryRateOverall: 9, Sustained: 10,
		Errors: map[string]int64{"503": 1}, DrainSec: 0.5,
		Latency: Latency{N: 100, Mean: 1, P50: 1, P95: 2, P99: 3, Max: 4}, AckLatency: Latency{N: 100, P99: 2, Max: 2}}
	b := &Phase{Sent: 300, Acked: 300, Delivered: 299, Lost: 1, LoadSec: 30, IngestRate: 10, DeliveryRate: 20, DeliveryRateOverall: 19, Sustained: 10,
		Errors: map[string]int64{"503": 2, "reset": 1}, DrainSec: 0.2,
		Latency: Latency{N: 300, Mean: 5, P50: 5, P95: 6, P99: 7, Max: 9}, AckLatency: Latency{N: 300, P99: 4, Max: 3}}
	m := mergePhases([]*Phase{a, b})
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	if m.Sent != 400 || m.Delivered != 399 || m.Lost != 1 || m.Errors["503"] != 3 || m.Errors["reset"] != 1 {
		t.Errorf("counts: %+v", m)
	}
	near("load", m.LoadSec, 40)
	near("drain", m.DrainSec, 0.5)
	near("delivery rate", m.DeliveryRate, (10*10+20*30)/40.0)
	near("overall", m.DeliveryRateOverall, (9*10+19*30)/40.0)
	near("sustained", m.Sustained, 10)
	near("p99", m.Latency.P99, (3*100+7*300)/400.0)
	near("mean", m.Latency.Mean, 4)
	near("max", m.Latency.Max, 9)
	near("ack p99", m.AckLatency.P99, 3.5)
	if m.Latency.N != 400 {
		t.Errorf("samples: %d", m.Latency.N)
	}

	p := mergeProcs([]*phaseStats{{RSSMaxMB: 18, CPUSec: 10, CPUCores: 1, BenchCores: 0.4}, {RSSMaxMB: 17, CPUSec: 12, CPUCores: 1.2, BenchCores: 0.6}})
	near("cpu", p.CPUSec, 22)
	near("cores", p.CPUCores, 1.1)
	near("bench", p.BenchCores, 0.5)
	near("rss", p.RSSMaxMB, 18)

	var res Result
	rr := relayRuns{}
	rr.add(a, &phaseStats{CPUSec: 1})
	rr.add(b, &phaseStats{CPUSec: 3})
	rr.fill(&res)
	if len(res.RelayRuns) != 2 || res.Relay.Delivered != 399 {
		t.Fatalf("fill: %+v", res)
	}
	near("cpu per event", res.RelayCPUPerEvent, 4/399.0*1e6)
	var one Result
	single := relayRuns{}
	single.add(a, &phaseStats{CPUSec: 1})
	single.fill(&one)
	if one.Relay != a || one.RelayRuns != nil {
		t.Errorf("one run: %+v", one)
	}
}
