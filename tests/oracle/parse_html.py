#!/usr/bin/env python3
"""Parses an HTML page with Python's own parser (html.parser, independent of the template
engine that wrote it) and prints every element as JSON: its tag, its attributes and its whole
text content (descendants included, character references decoded), in document order.
Used by tests/report.rs: python3 parse_html.py FILE > JSON.
"""
import json
import sys
from html.parser import HTMLParser

# Elements that never have content (their end tag is never written).
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Collect(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.open = []

    def handle_starttag(self, tag, attrs):
        e = {"tag": tag, "attrs": {k: (v if v is not None else "") for k, v in attrs},
             "text": ""}
        self.elements.append(e)
        if tag not in VOID:
            self.open.append(e)

    def handle_startendtag(self, tag, attrs):
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": ""})

    def handle_endtag(self, tag):
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i]["tag"] == tag:
                del self.open[i:]
                break

    def handle_data(self, data):
        for e in self.open:
            e["text"] += data


p = Collect()
with open(sys.argv[1], encoding="utf-8") as f:
    p.feed(f.read())
p.close()
json.dump(p.elements, sys.stdout)
