"""Synthetic load with Locust. Locust runs in its own processes; gate's process never imports it."""
