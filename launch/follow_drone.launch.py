"""Ocean tracker + drone follower (forward-looking camera, REP-103 body-frame Twist output).

    ros2 launch ocean_ros follow_drone.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info \\
        cmd_vel:=/mavros/setpoint_velocity/cmd_vel_unstamped tracker_params:=/path/to/my_tracker.yaml

``tracker_params`` is a copy of the shipped config/tracker.yaml with ``checkpoint`` set to the weights file.
With MAVROS set the setpoint_velocity plugin's ``mav_frame`` to ``BODY_NED`` (docs/followers.md). The follower
starts disarmed: ``ros2 service call /drone_follower/arm std_srvs/srv/SetBool "{data: true}"``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory("ocean_ros")
    arg = LaunchConfiguration
    sim_time = {"use_sim_time": ParameterValue(arg("use_sim_time"), value_type=bool)}
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
        DeclareLaunchArgument("image", default_value="image", description="camera image topic"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="camera_info topic"),
        DeclareLaunchArgument("cmd_vel", default_value="cmd_vel", description="body-frame Twist output topic"),
        DeclareLaunchArgument("tracker_params", default_value=os.path.join(share, "config", "tracker.yaml")),
        DeclareLaunchArgument("follower_params", default_value=os.path.join(share, "config", "follow_drone.yaml")),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        Node(
            package="ocean_ros", executable="ocean_tracker", name="ocean_tracker", namespace=arg("namespace"),
            parameters=[arg("tracker_params"), sim_time],
            remappings=[("image", arg("image"))],
            output="screen",
        ),
        Node(
            package="ocean_ros", executable="drone_follower", name="drone_follower", namespace=arg("namespace"),
            parameters=[arg("follower_params"), sim_time],
            remappings=[("camera_info", arg("camera_info")), ("cmd_vel", arg("cmd_vel"))],
            output="screen",
        ),
    ])
