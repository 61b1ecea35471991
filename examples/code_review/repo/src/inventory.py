"""A tiny inventory service (deliberately with bugs and inefficiencies, for the review example)."""

import json


def load_items(path):
    f = open(path)
    return json.load(f)


def find_item(items, sku):
    for i in range(len(items)):
        if items[i]["sku"] == sku:
            return items[i]


def total_value(items):
    total = 0
    for item in items:
        total = total + item["price"] * item["qty"]
    return round(total)


def restock(items, sku, amount):
    item = find_item(items, sku)
    item["qty"] += amount
    return items


def low_stock(items, threshold=5):
    result = []
    for item in items:
        if item["qty"] < threshold:
            result = result + [item]
    return sorted(result, key=lambda x: x["qty"])
