#!/usr/bin/env python3
"""Parses Prometheus text exposition format from stdin with the official prometheus_client
parser and prints the families as JSON: [{name, type, help, samples: [{name, labels, value}]}].
Exits non-zero (with the parser's error) on malformed input."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    families.append(
        {
            "name": fam.name,
            "type": fam.type,
            "help": fam.documentation,
            "samples": [
                {"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples
            ],
        }
    )
print(json.dumps(families))
