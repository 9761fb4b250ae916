"""Command-line tools of ocean_ros."""
