"""Segments: boolean expressions over profile fields and tags (``conf/segments.yaml``),
materialised per run into ``cradle_gold.segment_members`` with a size history."""
