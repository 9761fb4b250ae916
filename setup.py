"""ament_python package definition of ocean_ros (also installable with pip for development)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ocean_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: [
        "data/README.md", "data/Crossing/groundtruth_rect.txt", "data/Crossing/img/*.jpg",
        "models/*.pth", "models/README.md", "models/LICENSE-NanoTrack",
    ]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ocean_ros maintainers",
    maintainer_email="maintainers@ocean-ros.invalid",
    description="Ocean object-aware anchor-free tracker as a ROS 2 perception package",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "ocean_info = ocean_ros.tools.info:main",
            "ocean_frame_source = ocean_ros.tools.frame_source:main",
            "ocean_demo = ocean_ros.tools.demo:main",
            "ocean_tracker = ocean_ros.ros.tracker_node:main",
            "pan_tilt_follower = ocean_ros.follow.pan_tilt_node:main",
            "drone_follower = ocean_ros.follow.drone_node:main",
            "pan_tilt_sim = ocean_ros.follow.sim_node:main",
            "ocean-eval = ocean_ros.eval.cli:main",
            "ocean-train = ocean_ros.train.cli:main",
            "ocean-export = ocean_ros.tools.export:main",
        ],
    },
)
