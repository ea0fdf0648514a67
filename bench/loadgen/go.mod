module lanes.bench/loadgen

go 1.22
