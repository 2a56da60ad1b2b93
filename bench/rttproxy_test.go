package main

import (
	"testing"
	"time"
)

// The proxy delays each chunk once: 20 messages 0.1 ms apart on one
// connection each come back about one RTT after they were sent, not
// 20 RTTs.
func TestRTTProxyDoesNotAccumulate(t *testing.T) {
	const rtt = 4 * time.Millisecond
	med, worst, err := echoCheck(rtt, 20, 100*time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("echo through a %s proxy: median %s, max %s", rtt, med, worst)
	if med < rtt || med > 3*rtt {
		t.Errorf("median %s, want about %s", med, rtt)
	}
	if worst > 5*rtt {
		t.Errorf("max %s: delays accumulate (rtt %s)", worst, rtt)
	}
}
