"""Boards of a labgrid farm by place name: labgrid's coordinator finds them and locks them.

    labgrid://npu-1              the place npu-1 on $LG_COORDINATOR (default 127.0.0.1:20408)
    labgrid://host:20408/npu-1   the same on the coordinator at host:20408

A place's board is its NetworkSerialPort resource (ser2net's RFC 2217 port on the exporter's
host). `lease(url)` acquires the place for as long as the port is open, unless this user
already holds it (`labgrid-client -p npu-1 acquire`, the pytest plugin's --npu-places): then
it is used and left held.
"""
import argparse
import fnmatch
import os

from .errors import LinkError, NpuError

DEFAULT_COORDINATOR = "127.0.0.1:20408"


def coordinator_address(address=None):
    return address or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def parse_url(url):
    """labgrid://[HOST:PORT/]PLACE -> (coordinator address or None, place)."""
    rest = url[len("labgrid://"):]
    address, _, place = rest.rpartition("/")
    if not place:
        raise LinkError("%s names no place: write labgrid://PLACE or "
                        "labgrid://HOST:PORT/PLACE (`labgrid-client places` lists them)" % url)
    return address or None, place


class Coordinator:
    """A client session with labgrid's coordinator (labgrid's own ClientSession)."""

    def __init__(self, address=None):
        try:
            from labgrid.remote import client
        except ImportError as e:
            raise NpuError("labgrid places need labgrid: pip install 'npu-sdk[farm]'") from e
        self.address = coordinator_address(address)
        # the session's commands read their options from argparse; we call the stub ourselves
        extra = dict(args=argparse.Namespace(place=None, allow_unmatched=True, kick=False))
        try:
            self.session = client.start_session(self.address, extra=extra)
        except Exception as e:  # grpc and labgrid raise several types for a missing coordinator
            raise LinkError("cannot reach labgrid's coordinator at %s (%s); start it "
                            "(`npu farm up`, or labgrid-coordinator) or set LG_COORDINATOR"
                            % (self.address, e)) from e
        self.loop = self.session.loop
        self.me = "%s/%s" % (self.session.gethostname(), self.session.getuser())

    def close(self):
        try:
            self.loop.run_until_complete(self.session.stop())
            self.loop.run_until_complete(self.session.close())
        except Exception:  # a coordinator that went away first: nothing left to close
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        """One coordinator RPC, then wait until our view of places has caught up with it."""
        import grpc
        try:
            self.loop.run_until_complete(method(request))
            self.loop.run_until_complete(self.session.sync_with_coordinator())
        except grpc.aio.AioRpcError as e:
            return e.details() or str(e.code())
        return None

    def names(self, pattern="*"):
        """Place names matching a shell pattern (npu-*), sorted."""
        return sorted(n for n in self.session.places if fnmatch.fnmatchcase(n, pattern))

    def place(self, name):
        place = self.session.places.get(name)
        if place is None:
            raise LinkError("no place %r on labgrid's coordinator at %s; `labgrid-client -x %s "
                            "places` lists them" % (name, self.address, self.address))
        return place

    def held_by_me(self, name):
        return self.place(name).acquired == self.me

    def acquire(self, name):
        """Lock the place for this user; False when someone holds it (the coordinator decides)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
        self.place(name)
        return self._call(self.session.stub.AcquirePlace, pb.AcquirePlaceRequest(placename=name)) is None

    def release(self, name):
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
        self._call(self.session.stub.ReleasePlace, pb.ReleasePlaceRequest(placename=name))

    def add(self, name, match):
        """Create the place (when missing) with a resource match exporter/group/cls[/name]."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
        stub = self.session.stub
        if name not in self.session.places:
            self._call(stub.AddPlace, pb.AddPlaceRequest(name=name))
        if not self.place(name).hasmatch(match.split("/")):
            self._call(stub.AddPlaceMatch, pb.AddPlaceMatchRequest(placename=name, pattern=match))

    def delete(self, name):
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb
        self._call(self.session.stub.DeletePlace, pb.DeletePlaceRequest(name=name))

    def serial_url(self, name):
        """rfc2217://host:port of the held place's NetworkSerialPort."""
        place = self.place(name)
        for path in place.acquired_resources:
            exporter, group, cls, resource = path
            if cls != "NetworkSerialPort":
                continue
            res = self.session.resources.get(exporter, {}).get(group, {}).get(resource)
            if res is None or not res.avail:
                break
            p = res.args
            scheme = "socket" if p.get("protocol") == "raw" else "rfc2217"
            return "%s://%s:%d" % (scheme, p["host"], p["port"])
        raise LinkError("place %s has no available NetworkSerialPort (is its exporter "
                        "running? `labgrid-client -p %s show`)" % (name, name))


class Lease:
    """A place held for one connection: `url` is its serial port; release() gives the place
    back if this lease acquired it. Without a `coordinator`, the lease opens its own session
    and closes it on release (grpc shares one connection per process, and labgrid's
    coordinator takes one session per connection at a time: leases held together share one)."""

    def __init__(self, name, coordinator=None, address=None):
        self.name = name
        self.own = coordinator is None
        self.coordinator = Coordinator(address) if self.own else coordinator
        self.acquired = False
        try:
            if not self.coordinator.held_by_me(name):
                if not self.coordinator.acquire(name):
                    raise LinkError("place %s is held by %s; wait for it, or pick another place "
                                    "(`labgrid-client places`)"
                                    % (name, self.coordinator.place(name).acquired))
                self.acquired = True
            self.url = self.coordinator.serial_url(name)
        except BaseException:
            self.release()
            raise

    def release(self):
        if self.coordinator is None:
            return
        try:
            if self.acquired:
                self.coordinator.release(self.name)
        finally:
            if self.own:
                self.coordinator.close()
            self.coordinator = None


def lease(url):
    address, name = parse_url(url)
    return Lease(name, address=address)
