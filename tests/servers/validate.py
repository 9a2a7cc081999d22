#!/usr/bin/env python3
"""Validates JSON documents (one per line on stdin) against a JSON Schema (argv[1]) with the
`jsonschema` package. Prints "N valid" and exits 0, or prints the first errors and exits 1."""
import json, sys

import jsonschema

schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
n, bad = 0, 0
for line in sys.stdin:
    if not line.strip():
        continue
    n += 1
    for e in validator.iter_errors(json.loads(line)):
        bad += 1
        if bad <= 5:
            print(f"document {n}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
print(f"{n} valid" if not bad else f"{bad} errors in {n} documents")
sys.exit(1 if bad else 0)
