package delivery

// Destination returns the destination (scheme://host:port) a callback URL's
// deliveries share: their concurrency limit and circuit breaker, and the
// label of the breaker's metric.
func Destination(callbackURL string) string { return destinationOf(callbackURL) }
