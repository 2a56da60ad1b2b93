// Package recording is the recording model of SPEC §3: it turns what media
// servers report (publish, unpublish, file done, failure) and what recorders
// post through the generic API into Huawei's RECORD_* events with task and
// job ids, keeping each stream's state and timers in the store so that they
// survive a restart. A state change and the events it produces commit in one
// transaction with their deliveries.
package recording
