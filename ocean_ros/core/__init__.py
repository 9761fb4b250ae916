"""ROS-free tracking core: imports torch, numpy and cv2 only."""
