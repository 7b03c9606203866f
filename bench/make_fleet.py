#!/usr/bin/env python3
"""Writes an N-app windlass fleet and an equivalent compose file for benchmarks.

Usage: make_fleet.py N FLEET_DIR COMPOSE_FILE
Each app has an image, a command, two ports, two volumes, five env vars,
labels, a memory limit, a health check and a dependency on the previous
app; every tenth app has a scheduled job (windlass only: compose has none).
"""
import os
import sys

n, fleet, compose = int(sys.argv[1]), sys.argv[2], sys.argv[3]
os.makedirs(os.path.join(fleet, "apps"), exist_ok=True)
with open(os.path.join(fleet, "windlass.toml"), "w") as f:
    f.write('[host]\npodman = "5.4"\n[networks.bench]\nsubnet = "10.90.0.0/16"\n')
svc = ["services:"]
for i in range(n):
    name = f"app{i:04d}"
    port = 10000 + i
    dep = f'\n[depends]\nrequires = ["app{i-1:04d}"]\n' if i else ""
    job = (
        f'\n[[jobs]]\nname = "backup"\nschedule = "*-*-* 03:{i % 60:02d}:00"\n'
        f'command = ["podman", "exec", "{name}", "backup", "--all"]\ntimeout = "15m"\n'
        if i % 10 == 0 else ""
    )
    with open(os.path.join(fleet, "apps", f"{name}.toml"), "w") as f:
        f.write(f'''description = "benchmark app {i}"

[container]
image = "docker.io/library/nginx:1.27.{i % 10}"
command = ["nginx", "-g", "daemon off; worker_processes {i % 8 + 1};"]
ports = ["{port}:80", "127.0.0.1:{port + 20000}:443/tcp"]
volumes = ["{name}-data:/data", "/srv/{name}/conf:/etc/nginx/conf.d:ro"]
env = {{ APP_ID = "{i}", APP_NAME = "{name}", LOG_LEVEL = "info", GREETING = "hello world", PATH_PREFIX = "/{name}" }}
labels = {{ "org.example.app" = "{name}", "org.example.tier" = "web" }}
networks = ["bench"]
memory = "256Mi"

[health]
cmd = ["curl", "-fsS", "http://127.0.0.1/health"]
interval = "30s"
timeout = "5s"
retries = 3
{dep}{job}''')
    lines = [
        f"  {name}:",
        f"    image: docker.io/library/nginx:1.27.{i % 10}",
        f'    command: ["nginx", "-g", "daemon off; worker_processes {i % 8 + 1};"]',
        f'    ports: ["{port}:80", "127.0.0.1:{port + 20000}:443/tcp"]',
        f'    volumes: ["{name}-data:/data", "/srv/{name}/conf:/etc/nginx/conf.d:ro"]',
        "    environment:",
        f'      APP_ID: "{i}"',
        f"      APP_NAME: {name}",
        "      LOG_LEVEL: info",
        "      GREETING: hello world",
        f"      PATH_PREFIX: /{name}",
        "    labels:",
        f"      org.example.app: {name}",
        "      org.example.tier: web",
        "    networks: [bench]",
        "    mem_limit: 256m",
        "    healthcheck:",
        '      test: ["CMD", "curl", "-fsS", "http://127.0.0.1/health"]',
        "      interval: 30s",
        "      timeout: 5s",
        "      retries: 3",
    ]
    if i:
        lines += ["    depends_on:", f"      - app{i-1:04d}"]
    svc += lines
svc += ["networks:", "  bench:", "    ipam:", "      config:", "        - subnet: 10.90.0.0/16", "volumes:"]
svc += [f"  app{i:04d}-data: {{}}" for i in range(n)]
with open(compose, "w") as f:
    f.write("\n".join(svc) + "\n")
