"""Member profiles: life stage, journey stage, value (RFM) and state per one_id."""
