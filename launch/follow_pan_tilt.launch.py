"""Ocean tracker + pan-tilt follower.

    ros2 launch ocean_ros follow_pan_tilt.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info \
        commands:=/pan_tilt_controller/commands tracker_params:=/path/to/my_tracker.yaml

``tracker_params`` is a copy of the shipped config/tracker.yaml with ``checkpoint`` set to the weights file.

The follower starts disarmed: ``ros2 service call /pan_tilt_follower/arm std_srvs/srv/SetBool "{data: true}"``.
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
        DeclareLaunchArgument("joint_states", default_value="joint_states", description="joint states topic"),
        DeclareLaunchArgument("commands", default_value="pan_tilt_controller/commands",
                              description="Float64MultiArray command topic of the ros2_control controller"),
        DeclareLaunchArgument("tracker_params", default_value=os.path.join(share, "config", "tracker.yaml")),
        DeclareLaunchArgument("follower_params",
                              default_value=os.path.join(share, "config", "follow_pan_tilt.yaml")),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        Node(
            package="ocean_ros", executable="ocean_tracker", name="ocean_tracker", namespace=arg("namespace"),
            parameters=[arg("tracker_params"), sim_time],
            remappings=[("image", arg("image"))],
            output="screen",
        ),
        Node(
            package="ocean_ros", executable="pan_tilt_follower", name="pan_tilt_follower",
            namespace=arg("namespace"),
            parameters=[arg("follower_params"), sim_time],
            remappings=[
                ("camera_info", arg("camera_info")),
                ("joint_states", arg("joint_states")),
                ("pan_tilt_controller/commands", arg("commands")),
            ],
            output="screen",
        ),
    ])
