"""The Python side of `make bench` (mk/bench.mk; docs/benchmarks.md explains
the figures):

    coldstart     runs the function's processes (the Rust binary, the Python reference
                  in benches/python_reference) under lambda_stub and measures them
    lambda_stub   a Lambda Runtime API and a Kinesis PutRecords endpoint on the loopback
    report        the one table of `make bench`, from the results the benchmarks wrote
"""
