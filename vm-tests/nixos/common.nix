# Shared pieces of the NixOS VM tests.
{ pkgs, self }:
rec {
  # The test image of the Debian harness, built with pkgs.dockerTools
  # instead of `podman import`: busybox plus a page to serve.
  page = pkgs.writeTextDir "www/index.html" "windlass test page\n";
  image = pkgs.dockerTools.buildImage {
    name = "localhost/windlass-test/busybox";
    tag = "1.0";
    copyToRoot = pkgs.buildEnv {
      name = "windlass-test-root";
      paths = [
        pkgs.busybox
        page
      ];
      pathsToLink = [
        "/bin"
        "/www"
      ];
    };
    config.Cmd = [ "/bin/sh" ];
  };

  # The generated module of a fleet directory, for a backend.
  fleet =
    dir: backend:
    self.lib.fleetModule {
      inherit pkgs backend;
      fleet = dir;
    };

  # The service name of an app under a backend.
  unit = backend: app: if backend == "quadlet" then "${app}.service" else "podman-${app}.service";

  # Loads the test image before any container starts (no registry in the
  # test VM); ordered before the apps' units whatever their names.
  loadImage = apps: backend: {
    systemd.services.windlass-test-image = {
      wantedBy = [ "multi-user.target" ];
      before = map (unit backend) apps;
      requiredBy = map (unit backend) apps;
      path = [ pkgs.podman ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = "podman load -i ${image}";
    };
  };
}
