"""From finished runs to tables, claims, figures and report pages."""
