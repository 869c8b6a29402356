"""Reading raw data into a pandas table, inferring column types, splitting into train/validation/test."""
