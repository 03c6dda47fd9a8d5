import asyncio, imaplib
from tests.e2e.conftest import PASSWORD
from tests.corpus import build_corpus


async def test_poke(running_bridge):
    sim, t = running_bridge.sim, running_bridge.tenant
    fid = sim.create_folder(t.alice.id, "Projects")
    sub = sim.create_folder(t.alice.id, "Deep", parent=fid)
    for i, m in enumerate(build_corpus(5, seed=3)):
        sim.deliver(t.alice.id, m, folder=fid if i % 2 else "inbox")
    await running_bridge.sync_now("alice")

    def c():
        im = imaplib.IMAP4("127.0.0.1", running_bridge.imap_port)
        print(im.capabilities)
        im.login("alice", PASSWORD)
        print(im.capabilities)
        print(im.list())
        print(
            im._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)"),
            im.untagged_responses,
        )
        print(im.select("INBOX"))
        print(im.status("Projects", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"))
        im.logout()

    await asyncio.to_thread(c)
    print(sim.folders(t.alice.id)[0])
    print(sim.messages(t.alice.id, "inbox")[0].keys())
    assert 0
