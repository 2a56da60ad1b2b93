package main

import (
	"os"
	"strconv"
	"strings"
)

// The PostgreSQL server's own CPU, when it runs on this machine: with the
// database on the same two cores as livehooks and the load, its work per
// event is part of what bounds the rate, and the bench shows how much.

// serverCPU is the CPU seconds so far of each process of the local
// PostgreSQL server (every process named "postgres": the backends, the
// WAL writer, the checkpointer, …), by pid.
type serverCPU map[int]float64

// readServerCPU reads the CPU of the local PostgreSQL server's processes;
// none when it does not run here (or /proc cannot tell).
func readServerCPU() serverCPU {
	out := serverCPU{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if _, cpu, err := readProc(pid); err == nil {
			out[pid] = cpu
		}
	}
	return out
}

// since returns the CPU seconds the server's processes used from earlier to
// now: a process that started since counts whole, one that ended since is
// lost (the bench database's connections live through a phase).
func (now serverCPU) since(earlier serverCPU) float64 {
	var s float64
	for pid, cpu := range now {
		s += cpu - earlier[pid]
	}
	return s
}

// DatabaseCPU is the local PostgreSQL server's CPU over a load phase and its
// drain, beside livehooks' and the bench's.
type DatabaseCPU struct {
	Seconds        float64 `json:"cpu_s"`
	Cores          float64 `json:"cpu_cores"`
	MicrosPerEvent float64 `json:"cpu_us_per_event"`
}

// CPUBudget is the CPU per delivered event (µs) of livehooks, the local
// database server and the bench (its clients and receivers, and the -db-rtt
// proxy), beside what the machine's CPUs offer per event at the phase's
// rate (CPUs × 1 s ÷ events/s): when their sum nears it, the machine, not
// one of them, bounds the rate.
type CPUBudget struct {
	Livehooks float64 `json:"livehooks_us"`
	Database  float64 `json:"database_us,omitempty"`
	Bench     float64 `json:"bench_us"`
	Offered   float64 `json:"offered_us"`
	CPUs      int     `json:"cpus"`
}
