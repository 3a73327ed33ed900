"""Slurm accounts, partitions and QOS from token claims, and the 403 for what a user may not use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hpgc.auth.grants import GroupGrant, SlurmGrantSettings, authorize_resources, slurm_grant
from hpgc.auth.principal import Principal, SlurmGrant, UnmappedUser
from hpgc.errors import NotAllowed
from hpgc.models.resources import ResourceRequest

SITE = SlurmGrantSettings(claim="groups", groups={
    "geo-users": GroupGrant(account="geo", qos=["normal"], partitions=["debug"]),
    "bio-users": GroupGrant(account="bio", qos=["normal", "long"], partitions=None),
    "staff": GroupGrant(qos=["high"]),
})


def test_no_grant_settings_no_restriction() -> None:
    assert slurm_grant({"groups": ["geo-users"]}, SlurmGrantSettings()) is None
    p = Principal(subject="a")
    r = ResourceRequest(qos="anything", account="x")
    assert authorize_resources(p, r) is r


def test_groups_give_the_union_and_the_first_account() -> None:
    g = slurm_grant({"groups": ["staff", "geo-users", "bio-users", "other"]}, SITE)
    assert g == SlurmGrant(account="geo", accounts=["geo", "bio"], partitions=None, qos=["high", "normal", "long"])
    g = slurm_grant({"groups": "geo-users"}, SITE)  # a space-separated string too
    assert g == SlurmGrant(account="geo", accounts=["geo"], partitions=["debug"], qos=["normal"])


def test_no_matching_group_may_name_nothing_and_required_refuses() -> None:
    g = slurm_grant({"groups": ["nobody"]}, SITE)
    assert g == SlurmGrant(account=None, accounts=[], partitions=[], qos=[])
    with pytest.raises(NotAllowed, match="QOS 'normal' is not one you may use here; yours: none"):
        authorize_resources(Principal(subject="a", slurm=g), ResourceRequest(qos="normal"))
    with pytest.raises(UnmappedUser, match="no Slurm account"):
        slurm_grant({}, SITE.model_copy(update={"required": True}))


def test_account_template_from_a_claim() -> None:
    s = SlurmGrantSettings(account_template="proj_{project}")
    assert slurm_grant({"project": "x1"}, s) == SlurmGrant(account="proj_x1", accounts=["proj_x1"],
                                                            partitions=[], qos=[])
    # a value that cannot be a Slurm name gives no account rather than reaching an #SBATCH line
    assert slurm_grant({"project": "a b;rm"}, s).account is None  # type: ignore[union-attr]


def test_request_checked_and_default_account_filled() -> None:
    p = Principal(subject="a", slurm=slurm_grant({"groups": ["geo-users"]}, SITE))
    assert authorize_resources(p, None) == ResourceRequest(account="geo")
    assert authorize_resources(p, ResourceRequest(qos="normal", cpus=2)) == ResourceRequest(
        qos="normal", cpus=2, account="geo")
    with pytest.raises(NotAllowed, match="QOS 'high' is not one you may use here; yours: normal"):
        authorize_resources(p, ResourceRequest(qos="high"))
    with pytest.raises(NotAllowed, match="account 'bio' is not one"):
        authorize_resources(p, ResourceRequest(account="bio"))
    with pytest.raises(NotAllowed, match="partition 'gpu' is not one you may use here; yours: debug"):
        authorize_resources(p, ResourceRequest(partition="gpu"))


def test_names_in_settings_and_requests_are_slurm_names() -> None:
    with pytest.raises(ValidationError):
        GroupGrant(account="geo;rm -rf /")
    with pytest.raises(ValidationError):
        GroupGrant(qos=["normal", "a b"])
    with pytest.raises(ValidationError):
        ResourceRequest(qos="high\n#SBATCH --uid=0")
    with pytest.raises(ValidationError):
        ResourceRequest(account="$(id)")
