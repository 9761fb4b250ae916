"""ROS helpers of the tools, benchmarks and tests (never loaded by the nodes): loopback-only DDS settings, in-process
sessions and node processes, and the one camera publisher."""
