"""What the benchmarks are built of (not benchmarks themselves): the stack of a bench run, wrk, consumer
lag, CPU and memory of processes from /proc, the baseline endpoints."""
