"""ocean_ros: the Ocean object-aware anchor-free tracker as a ROS 2 perception package."""

__version__ = "0.1.0"
