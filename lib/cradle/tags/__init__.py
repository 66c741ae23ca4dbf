"""The tag engine: declarative tag rules (``conf/tags.yaml``) evaluated into
``cradle_gold.member_tags`` with SCD-2 history, plus third-party DMP tags."""
