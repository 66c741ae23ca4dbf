"""Realistic brand data for every landing source, with ground truth (`cradle generate`).

A separate corner of the project: it writes ``<out>/<source>/<date>/<file>`` per
docs/sources.md and ``<out>/_truth/`` for evaluators. No pipeline stage imports it, and it
imports nothing from the pipeline (only ``cradle.config``).

Modules, in the order data flows through them:

- ``settings``  typed ``conf/generator.yaml``
- ``reference`` cities and tiers, products, Spring Festival and promotion calendar, names
- ``world``     stores, hospitals, ad campaigns (shared by all blocks)
- ``people``    households, mothers, babies, daily life stage, identifiers
- ``behaviour`` formula renewal by stage, brand journey, other categories, co-purchase rules
- ``orders``    POS lines and e-commerce orders as delivered
- ``events``    CRM, WeChat, app, ads, hospital, Wi-Fi, DMP, consent records
- ``dirt``      record-level defects (each recorded in the truth)
- ``schema``    the contract's fields, keys and file names per source
- ``writers``   file plan, file-level defects, rendering, writing with line numbers
- ``engine``    blocks in parallel, files, truth tables and manifest
- ``cli``       ``run_generate`` for ``cradle generate``
"""
