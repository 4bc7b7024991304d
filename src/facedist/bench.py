def add_bench_parser(sub): pass
