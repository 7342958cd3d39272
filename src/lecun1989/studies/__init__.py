"""The studies behind the docs' tables: the rows as data (rows), their runner (runner), and the docs'
tables, quoted figures and pictures written and checked from the saved results (docs)."""
