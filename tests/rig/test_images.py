"""The rig's images: built here, keyed by their inputs, reused from the cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.docker_rig import catalogue, debian
from harness.docker_rig.containers import container
from harness.docker_rig.images import INPUTS_LABEL, ImageSpec, RigImages, ensure, present_key
from harness.mock_engine import REPO_ROOT


def test_the_base_is_debian_trixie_and_trusts_the_machines_certificate_authorities(rig_images: RigImages) -> None:
    base = rig_images[catalogue.BASE]
    with container(rig_images.rig, base, "sleep", "600") as box:
        code, os_release = box.exec("cat", "/etc/os-release")
        assert code == 0 and "VERSION_CODENAME=trixie" in os_release.splitlines()
        code, listed = box.exec("ls", str(debian.LOCAL_CAS))
        assert sorted(listed.split()) == sorted(ca.name for ca in debian.local_cas())


def test_an_image_carries_its_inputs_key_and_comes_back_from_the_cache(rig_images: RigImages) -> None:
    rig = rig_images.rig
    rig_images[catalogue.BASE]
    assert present_key(rig, catalogue.BASE.tag) == catalogue.BASE.key
    assert catalogue.BASE.cache_file.is_file()
    rig.docker("image", "rm", catalogue.BASE.tag)
    assert present_key(rig, catalogue.BASE.tag) is None
    provenance = dataclasses.replace(rig_images.provenance, how={}, seconds={})
    ensure(rig, catalogue.BASE, provenance)
    assert provenance.how == {catalogue.BASE.tag: "loaded from the cache"}
    labels = rig.docker("image", "inspect", "--format", "{{json .Config.Labels}}", catalogue.BASE.tag).stdout
    assert f'"{INPUTS_LABEL}":"{catalogue.BASE.key}"' in labels


def test_the_key_changes_with_every_input() -> None:
    context = REPO_ROOT / "components" / "data" / "postgres_image"
    spec = ImageSpec(
        tag="audit-x-rig/t:1", description="t", context=context, args={"A": "1"}, parents=(catalogue.BASE,)
    )
    keys = {
        spec.key,
        dataclasses.replace(spec, args={"A": "2"}).key,
        dataclasses.replace(spec, tag="audit-x-rig/t:2").key,
        dataclasses.replace(spec, context=REPO_ROOT / "runner").key,
        dataclasses.replace(spec, parents=()).key,
        dataclasses.replace(catalogue.BASE, rootfs_packages=("python3",)).key,
        catalogue.BASE.key,
    }
    assert len(keys) == 7
    assert spec.key == dataclasses.replace(spec).key  # the same inputs, the same key


def test_the_cache_keeps_one_save_per_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_X_CACHE", str(tmp_path))
    spec = dataclasses.replace(catalogue.INFLUX_CLI, tag="audit-x-rig/app:stand-in-2")
    other = dataclasses.replace(spec, tag="audit-x-rig/app:stand-in-2-failing-migration")
    spec.cache_file.parent.mkdir(parents=True)
    older = spec.cache_file.with_name(f"{spec.cache_stem}-0123456789abcdef.tar")
    for path in (spec.cache_file, older, other.cache_file):
        path.write_bytes(b"")
    assert spec.stale_cache_files() == [older]  # not the other tag whose name starts the same
