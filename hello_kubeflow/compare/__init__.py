"""The models side by side (`inv compare`): train or reuse, measure, tabulate, draw."""
