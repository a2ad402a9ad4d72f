"""Independent reference implementations that the native backend is checked against."""
