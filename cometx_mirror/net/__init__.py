"""Network plumbing shared by sources and sinks: an HTTP client with retries, Comet credentials."""
