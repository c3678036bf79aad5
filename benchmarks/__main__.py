"""`python -m benchmarks`: the list of benchmarks and how to run each."""
import benchmarks

print(benchmarks.__doc__)
