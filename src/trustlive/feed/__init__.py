"""The feeds (docs/feed.md): the follow feed (private domain) and the discovery feed (public
domain). ``relevance`` learns which items go with which from interactions (item-item
collaborative filtering); ``ranking`` turns one request's candidates into a page that spreads
exposure across creators (普惠分发: trust tilt, diminishing returns, head cap, exposure floor,
new-creator boost, traffic-reward grants, per-creator diversity) and holds the exposure metrics
(Gini, Lorenz curve, bottom-half share) that the feed and the ops dashboard report."""
