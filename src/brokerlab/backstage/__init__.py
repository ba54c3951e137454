"""The course's launcher ("backstage"): starts and stops the native brokers and clusters.

Never imported by lessons nor by anything outside this package; its interface is the
command line, `python -m brokerlab.backstage ...` (see __main__.py).
"""
