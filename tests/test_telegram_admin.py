"""ADMIN_IDS: the admin's /reload, through the real Application and the stand-in."""

from __future__ import annotations

from pathlib import Path

from conftest import KNOWLEDGE_DIR
from standin import StandIn, User, bot_settings, start_bot

from bot.clock import ScaledClock
from bot.knowledge import KnowledgeBase


async def test_only_an_admin_can_reload_the_knowledge_base(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    broken = tmp_path / "kb"
    broken.mkdir()
    (broken / "a.yaml").write_text("topics:\n  - id: x\n    kind: nope\n")
    settings = bot_settings(api, tmp_path / "data", ADMIN_IDS="7", KNOWLEDGE_DIR=str(broken))
    bot = await start_bot(api, settings, knowledge, ScaledClock(speed=1))
    try:
        admin, stranger = User(api, user_id=7), User(api, user_id=8)
        [refused] = await stranger.say("/reload")
        assert "don't know the command /reload" in refused.text
        [failed] = await admin.say("/reload")
        assert "Not reloaded" in failed.text
        assert "kb/a.yaml:3: topic x.kind: unknown kind 'nope'" in failed.text
        # The old knowledge base keeps answering.
        [answer] = await admin.say("how do i do petrissage")
        assert answer.text.startswith(knowledge.topics["petrissage"].title)

        (broken / "a.yaml").unlink()
        for source in KNOWLEDGE_DIR.rglob("*.yaml"):
            target = broken / source.relative_to(KNOWLEDGE_DIR)
            target.parent.mkdir(exist_ok=True)
            target.write_text(source.read_text())
        [reloaded] = await admin.say("/reload")
        assert f"Reloaded: {knowledge.summary()}" in reloaded.text
        assert "warning" not in reloaded.text

        # A phrasing two entries claim loads (the matcher asks back) but the admin hears of it.
        (broken / "reviewed.yaml").write_text("out_of_scope:\n  - kneading\n")
        [warned] = await admin.say("/reload")
        assert warned.text.endswith("1 warning(s): run massage-bot check.")
    finally:
        await bot.close()
