"""Ocean tracker node (lifecycle; configures and activates itself unless autostart:=false).

    ros2 launch ocean_ros tracker.launch.py checkpoint:=/path/OceanV.pth image:=/camera/image_raw
    ros2 launch ocean_ros tracker.launch.py params_file:=/path/my_tracker.yaml namespace:=cam0 device:=cuda:0

Arguments: params_file (default: the package's config/tracker.yaml), image (topic remapped to the node's
``image`` input), namespace, checkpoint and device (override the params file when given).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription

ARGUMENTS = {
    "params_file": "parameters file of the node (default: the package's config/tracker.yaml)",
    "image": "camera image topic, remapped to the node's 'image' input ('image/compressed' follows it)",
    "namespace": "namespace of the node (one tracker per camera)",
    "checkpoint": "Ocean checkpoint path; overrides the params file when not empty",
    "device": "auto, cpu, cuda or cuda:N; overrides the params file when not empty",
}


def _tracker(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    overrides = {name: value[name] for name in ("checkpoint", "device") if value[name]}
    image = value["image"]
    return [
        LifecycleNode(
            package="ocean_ros",
            executable="ocean_tracker",
            name="ocean_tracker",
            namespace=value["namespace"],
            parameters=[value["params_file"], overrides],
            remappings=[("image", image), ("image/compressed", image.rstrip("/") + "/compressed")],
            output="screen",
        )
    ]


def generate_launch_description():
    share = get_package_share_directory("ocean_ros")
    defaults = {"params_file": os.path.join(share, "config", "tracker.yaml"), "image": "image"}
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=defaults.get(name, ""), description=text)
         for name, text in ARGUMENTS.items()]
        + [OpaqueFunction(function=_tracker)]
    )
