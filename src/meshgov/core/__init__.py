"""The pure core of meshgov: no network, file, database or policy-engine imports live here."""
