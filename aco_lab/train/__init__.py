"""Training a tier router from the trace tables, and writing it as a bundle."""
