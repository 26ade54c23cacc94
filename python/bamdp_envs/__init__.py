"""bamdp's Python simulator bridge: task families on real MuJoCo (gymnasium) and
MetaWorld envs (`tasks`), and the worker process bamdp starts (`worker`)."""
