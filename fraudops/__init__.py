"""The ``fraudops`` command line and the demo storyline: the composition root, the one package that
may import every other, and what people see of the loop (progress, tables, errors that say what to do).
"""
