"""Ray: the same fit on a cluster (Ray Train, distributed data parallel), trials spread by Ray Tune, the server as a
Ray Serve deployment. Ray is imported only inside these modules' functions."""
