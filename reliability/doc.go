// Package reliability holds end-to-end reliability tests of livehooks: the
// real binary, run as a subprocess on its own data directory, killed with
// SIGKILL during load, facing receivers that fail, throttle or drop
// connections, and a store whose disk fills up. Receivers count every
// acknowledged event; the tests assert that none is lost.
//
// It has no code of its own: everything is in the _test files. The tests run
// one after another (no t.Parallel): each drives a subprocess hard, and their
// timings (failure windows, kill moments) mean more on an otherwise idle CPU.
package reliability
