"""`python -m bench`: the full benchmark run (`bench.run`)."""

from bench.run import main

main()
