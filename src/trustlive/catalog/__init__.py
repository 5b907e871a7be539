"""Catalog: categories and their policies, shops and staff, products with options and SKUs, search."""
