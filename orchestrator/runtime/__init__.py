"""The running sweep on Ray: pre-flight checks, the actor pool and gangs, the scheduler, probes and trials.
No math here: the kernels run inside the actors."""
