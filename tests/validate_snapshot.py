#!/usr/bin/env python3
"""Validates JSON snapshots (one document, or one per line) against JSON Schemas (draft 2020-12).

usage: validate_snapshot.py SCHEMA [SCHEMA...] < snapshots
Exit 0 when every document is valid against every schema; 1 with the first error otherwise;
3 when the jsonschema package is missing (the caller decides whether that is a skip).
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("python3 jsonschema is not installed", file=sys.stderr)
    sys.exit(3)

text = sys.stdin.read()
try:
    docs = [json.loads(text)]
except json.JSONDecodeError:
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
if not docs:
    print("no JSON document on stdin", file=sys.stderr)
    sys.exit(1)
for path in sys.argv[1:]:
    with open(path) as f:
        validator = jsonschema.Draft202012Validator(json.load(f), format_checker=jsonschema.FormatChecker())
    for i, doc in enumerate(docs):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            print(f"document {i}: {path}: at /{'/'.join(map(str, e.path))}: {e.message}", file=sys.stderr)
            sys.exit(1)
print(f"{len(docs)} document(s) valid against {len(sys.argv) - 1} schema(s)")
