"""Training pieces shared by both experiments: metrics, callbacks, and a timed `fit`."""
