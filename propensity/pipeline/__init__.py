"""Composition of the steps into the jobs a user runs: train, compare, score, demo.

Heavy modules are imported inside each job so that `propensity --help` stays fast.
"""
