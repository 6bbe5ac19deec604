"""Where the VPC functions run and what they may reach.

A new VPC has private isolated subnets only (no NAT, no internet): the functions reach DynamoDB
through a gateway endpoint and Secrets Manager through an interface endpoint, and Cassandra through
the network path the context names (`NetworkPath`): a VPC peering connection this stack creates
(with the return routes on the Cassandra side) or a Transit Gateway attachment, and a route to each
Cassandra CIDR in every function subnet's route table. The routes exist before the schema custom
resource runs (it depends on `schema_dependencies`), because it connects during the deploy. Lambda ships logs and
X-Ray segments itself, outside the function's network interfaces, and Powertools metrics are log
lines (EMF), so no CloudWatch or X-Ray endpoint is needed. An existing VPC (the way to reach an
existing Cassandra cluster, e.g. over peering) is imported from context attributes, with no look-up.

Security groups allow no ingress and only these egress rules: Cassandra's port to the Cassandra
CIDRs (every VPC function), HTTPS to the interface endpoints, and HTTPS to the DynamoDB prefix list
(the reader only).

With Amazon Keyspaces (`cassandraBackend=keyspaces`) there are no Cassandra CIDRs or routes: the
functions reach the service through an interface VPC endpoint `com.amazonaws.<region>.cassandra`
with private DNS (so `cassandra.<region>.amazonaws.com` resolves to it in the VPC), on port 9142
only, from the functions' group only. Astra DB needs no VPC at all (stacks/orderpipe_stack.py).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import custom_resources as cr
from constructs import Construct, IDependable

from orderpipe_common.cassandra_backends import KEYSPACES_PORT
from stacks.config import CassandraConfig, ExistingVpc, NetworkPath
from stacks.nag import acknowledge

_AWS_CUSTOM_RESOURCE_FUNCTION_ID = "AWS679f53fac002430cb0da5b7982bd2287"


class Network(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cassandra: CassandraConfig,
        path: NetworkPath,
        existing_vpc: ExistingVpc | None,
        create_endpoints: bool,
        new_vpc_cidr: str,
        max_azs: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc: ec2.IVpc
        if existing_vpc is None:
            vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(new_vpc_cidr),
                max_azs=max_azs,
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="functions", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                    )
                ],
                restrict_default_security_group=True,
            )
            flow_logs = vpc.add_flow_log("FlowLogs", traffic_type=ec2.FlowLogTrafficType.REJECT)
            del flow_logs
            self.vpc = vpc
            self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
            route_tables = [subnet.route_table.route_table_id for subnet in vpc.isolated_subnets]
            subnet_ids = [subnet.subnet_id for subnet in vpc.isolated_subnets]
        else:
            subnets = [
                ec2.Subnet.from_subnet_attributes(
                    self, f"Subnet{index}", subnet_id=subnet_id, availability_zone=zone, route_table_id=table
                )
                for index, (subnet_id, zone, table) in enumerate(
                    zip(
                        existing_vpc.subnet_ids,
                        existing_vpc.availability_zones,
                        existing_vpc.route_table_ids,
                        strict=True,
                    )
                )
            ]
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=existing_vpc.vpc_id,
                vpc_cidr_block=existing_vpc.cidr,
                availability_zones=list(existing_vpc.availability_zones),
                private_subnet_ids=list(existing_vpc.subnet_ids),
                private_subnet_route_table_ids=list(existing_vpc.route_table_ids),
            )
            self.subnets = ec2.SubnetSelection(subnets=subnets)
            # Several subnets may share one route table: one route per table (a second one would fail).
            route_tables = list(dict.fromkeys(existing_vpc.route_table_ids))
            subnet_ids = list(existing_vpc.subnet_ids)

        # Everything the schema custom resource needs in place before it connects during the deploy.
        self.schema_dependencies: list[IDependable] = []
        keyspaces = cassandra.backend == "keyspaces"
        if not keyspaces:
            self._cassandra_routes(cassandra, path, new_vpc_cidr, route_tables, subnet_ids)

        # Every VPC function: Cassandra's port on the Cassandra networks, nothing else by default.
        self.cassandra_clients = ec2.SecurityGroup(
            self,
            "CassandraClients",
            vpc=self.vpc,
            description=(
                "orderpipe VPC functions: Amazon Keyspaces port 9142 to its VPC endpoint only"
                if keyspaces
                else "orderpipe VPC functions: Cassandra port to the Cassandra CIDRs only"
            ),
            allow_all_outbound=False,
        )
        for cidr in cassandra.cidrs:
            self.cassandra_clients.add_egress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(cassandra.port), f"Cassandra native protocol to {cidr}"
            )

        # The reader also talks to DynamoDB (read cache) through the gateway endpoint.
        self.dynamodb_clients = ec2.SecurityGroup(
            self,
            "DynamoDbClients",
            vpc=self.vpc,
            description="orderpipe reader: HTTPS to the DynamoDB prefix list only",
            allow_all_outbound=False,
        )
        self.dynamodb_clients.add_egress_rule(
            ec2.Peer.prefix_list(self._dynamodb_prefix_list_id()), ec2.Port.tcp(443), "DynamoDB over HTTPS"
        )

        self.secrets_endpoint: ec2.InterfaceVpcEndpoint | None = None
        if create_endpoints:
            ec2.GatewayVpcEndpoint(
                self,
                "DynamoDbEndpoint",
                vpc=self.vpc,
                service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
                subnets=[self.subnets],
            )
            if cassandra.secret_arns:
                self.secrets_endpoint = self._interface_endpoint(
                    "SecretsManagerEndpoint",
                    "EndpointSecurityGroup",
                    service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
                    description="orderpipe interface endpoints: HTTPS from the VPC functions only",
                )
        if cassandra.secret_arns:
            # Fetching the credentials: HTTPS to the Secrets Manager endpoint (or, in an existing VPC
            # without our endpoint, to the VPC's own network where its endpoint lives).
            if self.secrets_endpoint is not None:
                self.secrets_endpoint.connections.allow_default_port_from(
                    self.cassandra_clients, "HTTPS from the orderpipe VPC functions"
                )
            else:
                self.cassandra_clients.add_egress_rule(
                    ec2.Peer.ipv4(self.vpc.vpc_cidr_block),
                    ec2.Port.tcp(443),
                    "HTTPS to the VPC's Secrets Manager endpoint",
                )
        self.keyspaces_endpoint: ec2.InterfaceVpcEndpoint | None = None
        if keyspaces:
            self._keyspaces_endpoint(create_endpoints)
        # The security groups carry their rules as children (egress to the endpoint, ingress on it).
        self.schema_dependencies.append(self.cassandra_clients)
        if self.secrets_endpoint is not None:
            self.schema_dependencies.append(self.secrets_endpoint)
            self.schema_dependencies.extend(self.secrets_endpoint.connections.security_groups)

    def _keyspaces_endpoint(self, create_endpoints: bool) -> None:
        """Amazon Keyspaces through an interface endpoint: TLS on 9142 from the functions' group only."""
        if not create_endpoints:
            # The VPC's own Keyspaces endpoint (with private DNS) serves the functions.
            self.cassandra_clients.add_egress_rule(
                ec2.Peer.ipv4(self.vpc.vpc_cidr_block),
                ec2.Port.tcp(KEYSPACES_PORT),
                "Amazon Keyspaces through the VPC's interface endpoint",
            )
            return
        self.keyspaces_endpoint = self._interface_endpoint(
            "KeyspacesEndpoint",
            "KeyspacesEndpointSecurityGroup",
            service=ec2.InterfaceVpcEndpointAwsService.KEYSPACES,  # com.amazonaws.<region>.cassandra, port 9142
            description="orderpipe Amazon Keyspaces endpoint: port 9142 from the VPC functions only",
        )
        self.keyspaces_endpoint.connections.allow_default_port_from(
            self.cassandra_clients, "Amazon Keyspaces (TLS, 9142) from the orderpipe VPC functions"
        )
        self.schema_dependencies.append(self.keyspaces_endpoint)
        self.schema_dependencies.extend(self.keyspaces_endpoint.connections.security_groups)

    def _interface_endpoint(
        self, endpoint_id: str, group_id: str, *, service: ec2.IInterfaceVpcEndpointService, description: str
    ) -> ec2.InterfaceVpcEndpoint:
        """An interface endpoint with private DNS in the function subnets, behind a group of its own
        that admits nothing until a rule names the functions' group."""
        group = ec2.SecurityGroup(
            self, group_id, vpc=self.vpc, description=description, allow_all_outbound=False
        )
        return ec2.InterfaceVpcEndpoint(
            self,
            endpoint_id,
            vpc=self.vpc,
            service=service,
            subnets=self.subnets,
            private_dns_enabled=True,
            security_groups=[group],
            open=False,
        )

    def _cassandra_routes(
        self,
        cassandra: CassandraConfig,
        path: NetworkPath,
        new_vpc_cidr: str,
        route_tables: list[str],
        subnet_ids: list[str],
    ) -> None:
        """Routes from every function subnet's route table to each Cassandra CIDR (and back, for peering)."""
        target: dict[str, str] = {}
        gateway_attachment: ec2.CfnTransitGatewayAttachment | None = None
        if path.peer_vpc_id is not None:
            # Same account and region: CloudFormation's request is accepted without a peering role.
            peering = ec2.CfnVPCPeeringConnection(
                self, "CassandraPeering", vpc_id=self.vpc.vpc_id, peer_vpc_id=path.peer_vpc_id
            )
            self.schema_dependencies.append(peering)
            target = {"vpc_peering_connection_id": peering.ref}
            for index, table in enumerate(path.peer_route_table_ids):
                back = ec2.CfnRoute(
                    self,
                    f"FromCassandra{index}",
                    route_table_id=table,
                    destination_cidr_block=new_vpc_cidr,
                    vpc_peering_connection_id=peering.ref,
                )
                self.schema_dependencies.append(back)
        elif path.peering_connection_id is not None:
            target = {"vpc_peering_connection_id": path.peering_connection_id}
        elif path.transit_gateway_id is not None:
            target = {"transit_gateway_id": path.transit_gateway_id}
            if isinstance(self.vpc, ec2.Vpc):  # a new VPC: attach it (an existing one already is)
                gateway_attachment = ec2.CfnTransitGatewayAttachment(
                    self,
                    "CassandraTransitGatewayAttachment",
                    transit_gateway_id=path.transit_gateway_id,
                    vpc_id=self.vpc.vpc_id,
                    subnet_ids=subnet_ids,
                )
                self.schema_dependencies.append(gateway_attachment)
        if not target:
            return  # routes_exist or same_vpc: nothing to add
        for table_index, table in enumerate(route_tables):
            for cidr_index, cidr in enumerate(cassandra.cidrs):
                route = ec2.CfnRoute(
                    self,
                    f"ToCassandra{table_index}x{cidr_index}",
                    route_table_id=table,
                    destination_cidr_block=cidr,
                    **target,
                )
                if gateway_attachment is not None:
                    # A route to a Transit Gateway is refused until the VPC's attachment exists.
                    route.node.add_dependency(gateway_attachment)
                self.schema_dependencies.append(route)

    def _dynamodb_prefix_list_id(self) -> str:
        """The region's DynamoDB managed prefix list, resolved at deploy time (no synth look-up)."""
        stack = cdk.Stack.of(self)
        lookup = cr.AwsCustomResource(
            self,
            "DynamoDbPrefixList",
            on_update=cr.AwsSdkCall(
                service="EC2",
                action="describeManagedPrefixLists",
                parameters={
                    "Filters": [
                        {"Name": "prefix-list-name", "Values": [f"com.amazonaws.{stack.region}.dynamodb"]}
                    ]
                },
                physical_resource_id=cr.PhysicalResourceId.of(f"dynamodb-prefix-list-{stack.region}"),
                output_paths=["PrefixLists.0.PrefixListId"],
            ),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(
                resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE
            ),
            install_latest_aws_sdk=False,
        )
        acknowledge(
            lookup,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeManagedPrefixLists supports no resource-level permissions; it is the only action "
            "this deploy-time look-up may call.",
        )
        # The look-up runs in one Lambda function CDK shares per stack (a fixed construct id).
        singleton = stack.node.try_find_child(_AWS_CUSTOM_RESOURCE_FUNCTION_ID)
        if singleton is not None:
            acknowledge(
                singleton,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's AwsCustomResource function logs through the AWS-maintained minimal logging policy.",
            )
        return lookup.get_response_field("PrefixLists.0.PrefixListId")
