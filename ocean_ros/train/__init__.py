"""Training of Ocean-Lite (ROS-free; uses ``ocean_ros.core`` and the ``ocean_ros.eval`` readers).

Nothing in ``ocean_ros.core`` imports this package.
"""
