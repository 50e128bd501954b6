"""Field tables of the Kubernetes protobuf messages the emulated API server decodes.

Facts taken from the ``generated.proto`` files of ``k8s.io/api`` and ``k8s.io/apimachinery``
(release 1.33, the version the emulated API servers report) and the Go types they are generated from; see
https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding for the
encoding. Each message is a space-separated list of fields ``<jsonName>=<number><type><flags>``:

* type: none = string, ``i`` int32/int64 (varint), ``b`` bool, ``y`` bytes (base64 in JSON),
  ``d`` double, ``T`` Time/MicroTime (RFC 3339 string), ``q`` resource.Quantity (string),
  ``n`` IntOrString, ``r`` RawExtension/FieldsV1 (embedded JSON), ``D`` Duration (string),
  ``@Name`` a nested message of this table, ``{x`` a ``map<string, x>`` (x one of the above).
* flags: ``*`` repeated; ``!`` a pointer in Go (sent only when set, so a zero value counts);
  ``^`` embedded in Go with ``json:",inline"`` (its fields belong to the enclosing object).

Only the kinds ``kubectl create <kind>`` makes and the emulator serves are listed, with every
message they reach except ``status`` (a create never carries one). Proto field names are the
JSON names (go-to-protobuf names them after the JSON tag).
"""

from __future__ import annotations

# Top-level messages by (apiVersion, kind).
KINDS = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("networking.k8s.io/v1", "NetworkPolicy"): "NetworkPolicy",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    # The body of a DELETE (meta/v1, registered in every group version).
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
}

MESSAGES = {
    "DeleteOptions": (
        "gracePeriodSeconds=1i! preconditions=2@Preconditions! orphanDependents=3b! propagationPolicy=4s! dryRun=5s*"
    ),
    "Preconditions": "uid=1s! resourceVersion=2s!",
    "AWSElasticBlockStoreVolumeSource": "volumeID=1 fsType=2 partition=3i readOnly=4b",
    "Affinity": "nodeAffinity=1@NodeAffinity! podAffinity=2@PodAffinity! podAntiAffinity=3@PodAntiAffinity!",
    "AggregationRule": "clusterRoleSelectors=1@LabelSelector*",
    "AppArmorProfile": "type=1 localhostProfile=2s!",
    "AzureDiskVolumeSource": "diskName=1 diskURI=2 cachingMode=3s! fsType=4s! readOnly=5b! kind=6s!",
    "AzureFileVolumeSource": "secretName=1 shareName=2 readOnly=3b",
    "CSIVolumeSource": (
        "driver=1 readOnly=2b! fsType=3s! volumeAttributes=4{s nodePublishSecretRef=5@LocalObjectReference!"
    ),
    "Capabilities": "add=1s* drop=2s*",
    "CephFSVolumeSource": "monitors=1s* path=2 user=3 secretFile=4 secretRef=5@LocalObjectReference! readOnly=6b",
    "CinderVolumeSource": "volumeID=1 fsType=2 readOnly=3b secretRef=4@LocalObjectReference!",
    "ClientIPConfig": "timeoutSeconds=1i!",
    "ClusterRole": "metadata=1@ObjectMeta rules=2@PolicyRule* aggregationRule=3@AggregationRule!",
    "ClusterRoleBinding": "metadata=1@ObjectMeta subjects=2@Subject* roleRef=3@RoleRef",
    "ClusterTrustBundleProjection": "name=1s! signerName=2s! labelSelector=3@LabelSelector! optional=5b! path=4",
    "ConfigMap": "metadata=1@ObjectMeta immutable=4b! data=2{s binaryData=3{y",
    "ConfigMapEnvSource": "localObjectReference=1@LocalObjectReference^ optional=2b!",
    "ConfigMapKeySelector": "localObjectReference=1@LocalObjectReference^ key=2 optional=3b!",
    "ConfigMapProjection": "localObjectReference=1@LocalObjectReference^ items=2@KeyToPath* optional=4b!",
    "ConfigMapVolumeSource": (
        "localObjectReference=1@LocalObjectReference^ items=2@KeyToPath* defaultMode=3i! optional=4b!"
    ),
    "Container": (
        "name=1 image=2 command=3s* args=4s* workingDir=5 ports=6@ContainerPort* "
        "envFrom=19@EnvFromSource* env=7@EnvVar* resources=8@ResourceRequirements "
        "resizePolicy=23@ContainerResizePolicy* restartPolicy=24s! volumeMounts=9@VolumeMount* "
        "volumeDevices=21@VolumeDevice* livenessProbe=10@Probe! readinessProbe=11@Probe! "
        "startupProbe=22@Probe! lifecycle=12@Lifecycle! terminationMessagePath=13 "
        "terminationMessagePolicy=20 imagePullPolicy=14 securityContext=15@SecurityContext! stdin=16b "
        "stdinOnce=17b tty=18b"
    ),
    "ContainerPort": "name=1 hostPort=2i containerPort=3i protocol=4 hostIP=5",
    "ContainerResizePolicy": "resourceName=1 restartPolicy=2",
    "Deployment": "metadata=1@ObjectMeta spec=2@DeploymentSpec",
    "DeploymentSpec": (
        "replicas=1i! selector=2@LabelSelector! template=3@PodTemplateSpec strategy=4@DeploymentStrategy "
        "minReadySeconds=5i revisionHistoryLimit=6i! paused=7b progressDeadlineSeconds=9i!"
    ),
    "DeploymentStrategy": "type=1 rollingUpdate=2@RollingUpdateDeployment!",
    "DownwardAPIProjection": "items=1@DownwardAPIVolumeFile*",
    "DownwardAPIVolumeFile": (
        "path=1 fieldRef=2@ObjectFieldSelector! resourceFieldRef=3@ResourceFieldSelector! mode=4i!"
    ),
    "DownwardAPIVolumeSource": "items=1@DownwardAPIVolumeFile* defaultMode=2i!",
    "EmptyDirVolumeSource": "medium=1 sizeLimit=2q!",
    "EnvFromSource": "prefix=1 configMapRef=2@ConfigMapEnvSource! secretRef=3@SecretEnvSource!",
    "EnvVar": "name=1 value=2 valueFrom=3@EnvVarSource!",
    "EnvVarSource": (
        "fieldRef=1@ObjectFieldSelector! resourceFieldRef=2@ResourceFieldSelector! "
        "configMapKeyRef=3@ConfigMapKeySelector! secretKeyRef=4@SecretKeySelector!"
    ),
    "EphemeralContainer": "ephemeralContainerCommon=1@EphemeralContainerCommon^ targetContainerName=2",
    "EphemeralContainerCommon": (
        "name=1 image=2 command=3s* args=4s* workingDir=5 ports=6@ContainerPort* "
        "envFrom=19@EnvFromSource* env=7@EnvVar* resources=8@ResourceRequirements "
        "resizePolicy=23@ContainerResizePolicy* restartPolicy=24s! volumeMounts=9@VolumeMount* "
        "volumeDevices=21@VolumeDevice* livenessProbe=10@Probe! readinessProbe=11@Probe! "
        "startupProbe=22@Probe! lifecycle=12@Lifecycle! terminationMessagePath=13 "
        "terminationMessagePolicy=20 imagePullPolicy=14 securityContext=15@SecurityContext! stdin=16b "
        "stdinOnce=17b tty=18b"
    ),
    "EphemeralVolumeSource": "volumeClaimTemplate=1@PersistentVolumeClaimTemplate!",
    "ExecAction": "command=1s*",
    "FCVolumeSource": "targetWWNs=1s* lun=2i! fsType=3 readOnly=4b wwids=5s*",
    "FieldSelectorAttributes": "rawSelector=1 requirements=2@FieldSelectorRequirement*",
    "FieldSelectorRequirement": "key=1 operator=2 values=3s*",
    "FlexVolumeSource": "driver=1 fsType=2 secretRef=3@LocalObjectReference! readOnly=4b options=5{s",
    "FlockerVolumeSource": "datasetName=1 datasetUUID=2",
    "GCEPersistentDiskVolumeSource": "pdName=1 fsType=2 partition=3i readOnly=4b",
    "GRPCAction": "port=1i service=2s!",
    "GitRepoVolumeSource": "repository=1 revision=2 directory=3",
    "GlusterfsVolumeSource": "endpoints=1 path=2 readOnly=3b",
    "HTTPGetAction": "path=1 port=2n host=3 scheme=4 httpHeaders=5@HTTPHeader*",
    "HTTPHeader": "name=1 value=2",
    "HTTPIngressPath": "path=1 pathType=3s! backend=2@IngressBackend",
    "HTTPIngressRuleValue": "paths=1@HTTPIngressPath*",
    "HostAlias": "ip=1 hostnames=2s*",
    "HostPathVolumeSource": "path=1 type=2s!",
    "IPBlock": "cidr=1 except=2s*",
    "ISCSIVolumeSource": (
        "targetPortal=1 iqn=2 lun=3i iscsiInterface=4 fsType=5 readOnly=6b portals=7s* "
        "chapAuthDiscovery=8b chapAuthSession=11b secretRef=10@LocalObjectReference! initiatorName=12s!"
    ),
    "ImageVolumeSource": "reference=1 pullPolicy=2",
    "Ingress": "metadata=1@ObjectMeta spec=2@IngressSpec",
    "IngressBackend": "service=4@IngressServiceBackend! resource=3@TypedLocalObjectReference!",
    "IngressRule": "host=1 ingressRuleValue=2@IngressRuleValue^",
    "IngressRuleValue": "http=1@HTTPIngressRuleValue!",
    "IngressServiceBackend": "name=1 port=2@ServiceBackendPort",
    "IngressSpec": "ingressClassName=4s! defaultBackend=1@IngressBackend! tls=2@IngressTLS* rules=3@IngressRule*",
    "IngressTLS": "hosts=1s* secretName=2",
    "Job": "metadata=1@ObjectMeta spec=2@JobSpec",
    "JobSpec": (
        "parallelism=1i! completions=2i! activeDeadlineSeconds=3i! podFailurePolicy=11@PodFailurePolicy! "
        "successPolicy=16@SuccessPolicy! backoffLimit=7i! backoffLimitPerIndex=12i! maxFailedIndexes=13i! "
        "selector=4@LabelSelector! manualSelector=5b! template=6@PodTemplateSpec "
        "ttlSecondsAfterFinished=8i! completionMode=9s! suspend=10b! podReplacementPolicy=14s! "
        "managedBy=15s!"
    ),
    "KeyToPath": "key=1 path=2 mode=3i!",
    "LabelSelector": "matchLabels=1{s matchExpressions=2@LabelSelectorRequirement*",
    "LabelSelectorAttributes": "rawSelector=1 requirements=2@LabelSelectorRequirement*",
    "LabelSelectorRequirement": "key=1 operator=2 values=3s*",
    "Lease": "metadata=1@ObjectMeta spec=2@LeaseSpec",
    "LeaseSpec": (
        "holderIdentity=1s! leaseDurationSeconds=2i! acquireTime=3T! renewTime=4T! leaseTransitions=5i! "
        "strategy=6s! preferredHolder=7s!"
    ),
    "Lifecycle": "postStart=1@LifecycleHandler! preStop=2@LifecycleHandler! stopSignal=3s!",
    "LifecycleHandler": "exec=1@ExecAction! httpGet=2@HTTPGetAction! tcpSocket=3@TCPSocketAction! sleep=4@SleepAction!",
    "LocalObjectReference": "name=1",
    "ManagedFieldsEntry": "manager=1 operation=2 apiVersion=3 time=4T! fieldsType=6 fieldsV1=7r! subresource=8",
    "NFSVolumeSource": "server=1 path=2 readOnly=3b",
    "Namespace": "metadata=1@ObjectMeta spec=2@NamespaceSpec",
    "NamespaceSpec": "finalizers=1s*",
    "NetworkPolicy": "metadata=1@ObjectMeta spec=2@NetworkPolicySpec",
    "NetworkPolicyEgressRule": "ports=1@NetworkPolicyPort* to=2@NetworkPolicyPeer*",
    "NetworkPolicyIngressRule": "ports=1@NetworkPolicyPort* from=2@NetworkPolicyPeer*",
    "NetworkPolicyPeer": "podSelector=1@LabelSelector! namespaceSelector=2@LabelSelector! ipBlock=3@IPBlock!",
    "NetworkPolicyPort": "protocol=1s! port=2n! endPort=3i!",
    "NetworkPolicySpec": (
        "podSelector=1@LabelSelector ingress=2@NetworkPolicyIngressRule* "
        "egress=3@NetworkPolicyEgressRule* policyTypes=4s*"
    ),
    "NodeAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1@NodeSelector! "
        "preferredDuringSchedulingIgnoredDuringExecution=2@PreferredSchedulingTerm*"
    ),
    "NodeSelector": "nodeSelectorTerms=1@NodeSelectorTerm*",
    "NodeSelectorRequirement": "key=1 operator=2 values=3s*",
    "NodeSelectorTerm": "matchExpressions=1@NodeSelectorRequirement* matchFields=2@NodeSelectorRequirement*",
    "NonResourceAttributes": "path=1 verb=2",
    "ObjectFieldSelector": "apiVersion=1 fieldPath=2",
    "ObjectMeta": (
        "name=1 generateName=2 namespace=3 selfLink=4 uid=5 resourceVersion=6 generation=7i "
        "creationTimestamp=8T deletionTimestamp=9T! deletionGracePeriodSeconds=10i! labels=11{s "
        "annotations=12{s ownerReferences=13@OwnerReference* finalizers=14s* "
        "managedFields=17@ManagedFieldsEntry*"
    ),
    "ObjectReference": "kind=1 namespace=2 name=3 uid=4 apiVersion=5 resourceVersion=6 fieldPath=7",
    "OwnerReference": "apiVersion=5 kind=1 name=3 uid=4 controller=6b! blockOwnerDeletion=7b!",
    "PersistentVolumeClaimSpec": (
        "accessModes=1s* selector=4@LabelSelector! resources=2@VolumeResourceRequirements volumeName=3 "
        "storageClassName=5s! volumeMode=6s! dataSource=7@TypedLocalObjectReference! "
        "dataSourceRef=8@TypedObjectReference! volumeAttributesClassName=9s!"
    ),
    "PersistentVolumeClaimTemplate": "metadata=1@ObjectMeta spec=2@PersistentVolumeClaimSpec",
    "PersistentVolumeClaimVolumeSource": "claimName=1 readOnly=2b",
    "PhotonPersistentDiskVolumeSource": "pdID=1 fsType=2",
    "Pod": "metadata=1@ObjectMeta spec=2@PodSpec",
    "PodAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1@PodAffinityTerm* "
        "preferredDuringSchedulingIgnoredDuringExecution=2@WeightedPodAffinityTerm*"
    ),
    "PodAffinityTerm": (
        "labelSelector=1@LabelSelector! namespaces=2s* topologyKey=3 namespaceSelector=4@LabelSelector! "
        "matchLabelKeys=5s* mismatchLabelKeys=6s*"
    ),
    "PodAntiAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1@PodAffinityTerm* "
        "preferredDuringSchedulingIgnoredDuringExecution=2@WeightedPodAffinityTerm*"
    ),
    "PodDNSConfig": "nameservers=1s* searches=2s* options=3@PodDNSConfigOption*",
    "PodDNSConfigOption": "name=1 value=2s!",
    "PodDisruptionBudget": "metadata=1@ObjectMeta spec=2@PodDisruptionBudgetSpec",
    "PodDisruptionBudgetSpec": (
        "minAvailable=1n! selector=2@LabelSelector! maxUnavailable=3n! unhealthyPodEvictionPolicy=4s!"
    ),
    "PodFailurePolicy": "rules=1@PodFailurePolicyRule*",
    "PodFailurePolicyOnExitCodesRequirement": "containerName=1s! operator=2 values=3i*",
    "PodFailurePolicyOnPodConditionsPattern": "type=1 status=2",
    "PodFailurePolicyRule": (
        "action=1 onExitCodes=2@PodFailurePolicyOnExitCodesRequirement! "
        "onPodConditions=3@PodFailurePolicyOnPodConditionsPattern*"
    ),
    "PodOS": "name=1",
    "PodReadinessGate": "conditionType=1",
    "PodResourceClaim": "name=1 resourceClaimName=3s! resourceClaimTemplateName=4s!",
    "PodSchedulingGate": "name=1",
    "PodSecurityContext": (
        "seLinuxOptions=1@SELinuxOptions! windowsOptions=8@WindowsSecurityContextOptions! runAsUser=2i! "
        "runAsGroup=6i! runAsNonRoot=3b! supplementalGroups=4i* supplementalGroupsPolicy=12s! fsGroup=5i! "
        "sysctls=7@Sysctl* fsGroupChangePolicy=9s! seccompProfile=10@SeccompProfile! "
        "appArmorProfile=11@AppArmorProfile! seLinuxChangePolicy=13s!"
    ),
    "PodSpec": (
        "volumes=1@Volume* initContainers=20@Container* containers=2@Container* "
        "ephemeralContainers=34@EphemeralContainer* restartPolicy=3 terminationGracePeriodSeconds=4i! "
        "activeDeadlineSeconds=5i! dnsPolicy=6 nodeSelector=7{s serviceAccountName=8 serviceAccount=9 "
        "automountServiceAccountToken=21b! nodeName=10 hostNetwork=11b hostPID=12b hostIPC=13b "
        "shareProcessNamespace=27b! securityContext=14@PodSecurityContext! "
        "imagePullSecrets=15@LocalObjectReference* hostname=16 subdomain=17 affinity=18@Affinity! "
        "schedulerName=19 tolerations=22@Toleration* hostAliases=23@HostAlias* priorityClassName=24 "
        "priority=25i! dnsConfig=26@PodDNSConfig! readinessGates=28@PodReadinessGate* "
        "runtimeClassName=29s! enableServiceLinks=30b! preemptionPolicy=31s! overhead=32{q "
        "topologySpreadConstraints=33@TopologySpreadConstraint* setHostnameAsFQDN=35b! os=36@PodOS! "
        "hostUsers=37b! schedulingGates=38@PodSchedulingGate* resourceClaims=39@PodResourceClaim* "
        "resources=40@ResourceRequirements!"
    ),
    "PodTemplateSpec": "metadata=1@ObjectMeta spec=2@PodSpec",
    "PolicyRule": "verbs=1s* apiGroups=2s* resources=3s* resourceNames=4s* nonResourceURLs=5s*",
    "PortworxVolumeSource": "volumeID=1 fsType=2 readOnly=3b",
    "PreferredSchedulingTerm": "weight=1i preference=2@NodeSelectorTerm",
    "PriorityClass": "metadata=1@ObjectMeta value=2i globalDefault=3b description=4 preemptionPolicy=5s!",
    "Probe": (
        "handler=1@ProbeHandler^ initialDelaySeconds=2i timeoutSeconds=3i periodSeconds=4i "
        "successThreshold=5i failureThreshold=6i terminationGracePeriodSeconds=7i!"
    ),
    "ProbeHandler": "exec=1@ExecAction! httpGet=2@HTTPGetAction! tcpSocket=3@TCPSocketAction! grpc=4@GRPCAction!",
    "ProjectedVolumeSource": "sources=1@VolumeProjection* defaultMode=2i!",
    "QuobyteVolumeSource": "registry=1 volume=2 readOnly=3b user=4 group=5 tenant=6",
    "RBDVolumeSource": (
        "monitors=1s* image=2 fsType=3 pool=4 user=5 keyring=6 secretRef=7@LocalObjectReference! readOnly=8b"
    ),
    "ResourceAttributes": (
        "namespace=1 verb=2 group=3 version=4 resource=5 subresource=6 name=7 "
        "fieldSelector=8@FieldSelectorAttributes! labelSelector=9@LabelSelectorAttributes!"
    ),
    "ResourceClaim": "name=1 request=2",
    "ResourceFieldSelector": "containerName=1 resource=2 divisor=3q",
    "ResourceRequirements": "limits=1{q requests=2{q claims=3@ResourceClaim*",
    "Role": "metadata=1@ObjectMeta rules=2@PolicyRule*",
    "RoleBinding": "metadata=1@ObjectMeta subjects=2@Subject* roleRef=3@RoleRef",
    "RoleRef": "apiGroup=1 kind=2 name=3",
    "RollingUpdateDeployment": "maxUnavailable=1n! maxSurge=2n!",
    "SELinuxOptions": "user=1 role=2 type=3 level=4",
    "ScaleIOVolumeSource": (
        "gateway=1 system=2 secretRef=3@LocalObjectReference! sslEnabled=4b protectionDomain=5 "
        "storagePool=6 storageMode=7 volumeName=8 fsType=9 readOnly=10b"
    ),
    "SeccompProfile": "type=1 localhostProfile=2s!",
    "Secret": "metadata=1@ObjectMeta immutable=5b! data=2{y stringData=4{s type=3",
    "SecretEnvSource": "localObjectReference=1@LocalObjectReference^ optional=2b!",
    "SecretKeySelector": "localObjectReference=1@LocalObjectReference^ key=2 optional=3b!",
    "SecretProjection": "localObjectReference=1@LocalObjectReference^ items=2@KeyToPath* optional=4b!",
    "SecretVolumeSource": "secretName=1 items=2@KeyToPath* defaultMode=3i! optional=4b!",
    "SecurityContext": (
        "capabilities=1@Capabilities! privileged=2b! seLinuxOptions=3@SELinuxOptions! "
        "windowsOptions=10@WindowsSecurityContextOptions! runAsUser=4i! runAsGroup=8i! runAsNonRoot=5b! "
        "readOnlyRootFilesystem=6b! allowPrivilegeEscalation=7b! procMount=9s! "
        "seccompProfile=11@SeccompProfile! appArmorProfile=12@AppArmorProfile!"
    ),
    "SelfSubjectAccessReview": "metadata=1@ObjectMeta spec=2@SelfSubjectAccessReviewSpec",
    "SelfSubjectAccessReviewSpec": (
        "resourceAttributes=1@ResourceAttributes! nonResourceAttributes=2@NonResourceAttributes!"
    ),
    "SelfSubjectReview": "metadata=1@ObjectMeta",
    "Service": "metadata=1@ObjectMeta spec=2@ServiceSpec",
    "ServiceAccount": (
        "metadata=1@ObjectMeta secrets=2@ObjectReference* imagePullSecrets=3@LocalObjectReference* "
        "automountServiceAccountToken=4b!"
    ),
    "ServiceAccountTokenProjection": "audience=1 expirationSeconds=2i! path=3",
    "ServiceBackendPort": "name=1 number=2i",
    "ServicePort": "name=1 protocol=2 appProtocol=6s! port=3i targetPort=4n nodePort=5i",
    "ServiceSpec": (
        "ports=1@ServicePort* selector=2{s clusterIP=3 clusterIPs=18s* type=4 externalIPs=5s* "
        "sessionAffinity=7 loadBalancerIP=8 loadBalancerSourceRanges=9s* externalName=10 "
        "externalTrafficPolicy=11 healthCheckNodePort=12i publishNotReadyAddresses=13b "
        "sessionAffinityConfig=14@SessionAffinityConfig! ipFamilies=19s* ipFamilyPolicy=17s! "
        "allocateLoadBalancerNodePorts=20b! loadBalancerClass=21s! internalTrafficPolicy=22s! "
        "trafficDistribution=23s!"
    ),
    "SessionAffinityConfig": "clientIP=1@ClientIPConfig!",
    "SleepAction": "seconds=1i",
    "StorageOSVolumeSource": "volumeName=1 volumeNamespace=2 fsType=3 readOnly=4b secretRef=5@LocalObjectReference!",
    "Subject": "kind=1 apiGroup=2 name=3 namespace=4",
    "SuccessPolicy": "rules=1@SuccessPolicyRule*",
    "SuccessPolicyRule": "succeededIndexes=1s! succeededCount=2i!",
    "Sysctl": "name=1 value=2",
    "TCPSocketAction": "port=1n host=2",
    "Toleration": "key=1 operator=2 value=3 effect=4 tolerationSeconds=5i!",
    "TopologySpreadConstraint": (
        "maxSkew=1i topologyKey=2 whenUnsatisfiable=3 labelSelector=4@LabelSelector! minDomains=5i! "
        "nodeAffinityPolicy=6s! nodeTaintsPolicy=7s! matchLabelKeys=8s*"
    ),
    "TypedLocalObjectReference": "apiGroup=1s! kind=2 name=3",
    "TypedObjectReference": "apiGroup=1s! kind=2 name=3 namespace=4s!",
    "Volume": "name=1 volumeSource=2@VolumeSource^",
    "VolumeDevice": "name=1 devicePath=2",
    "VolumeMount": (
        "name=1 readOnly=2b recursiveReadOnly=7s! mountPath=3 subPath=4 mountPropagation=5s! subPathExpr=6"
    ),
    "VolumeProjection": (
        "secret=1@SecretProjection! downwardAPI=2@DownwardAPIProjection! configMap=3@ConfigMapProjection! "
        "serviceAccountToken=4@ServiceAccountTokenProjection! "
        "clusterTrustBundle=5@ClusterTrustBundleProjection!"
    ),
    "VolumeResourceRequirements": "limits=1{q requests=2{q",
    "VolumeSource": (
        "hostPath=1@HostPathVolumeSource! emptyDir=2@EmptyDirVolumeSource! "
        "gcePersistentDisk=3@GCEPersistentDiskVolumeSource! "
        "awsElasticBlockStore=4@AWSElasticBlockStoreVolumeSource! gitRepo=5@GitRepoVolumeSource! "
        "secret=6@SecretVolumeSource! nfs=7@NFSVolumeSource! iscsi=8@ISCSIVolumeSource! "
        "glusterfs=9@GlusterfsVolumeSource! persistentVolumeClaim=10@PersistentVolumeClaimVolumeSource! "
        "rbd=11@RBDVolumeSource! flexVolume=12@FlexVolumeSource! cinder=13@CinderVolumeSource! "
        "cephfs=14@CephFSVolumeSource! flocker=15@FlockerVolumeSource! "
        "downwardAPI=16@DownwardAPIVolumeSource! fc=17@FCVolumeSource! "
        "azureFile=18@AzureFileVolumeSource! configMap=19@ConfigMapVolumeSource! "
        "vsphereVolume=20@VsphereVirtualDiskVolumeSource! quobyte=21@QuobyteVolumeSource! "
        "azureDisk=22@AzureDiskVolumeSource! photonPersistentDisk=23@PhotonPersistentDiskVolumeSource! "
        "projected=26@ProjectedVolumeSource! portworxVolume=24@PortworxVolumeSource! "
        "scaleIO=25@ScaleIOVolumeSource! storageos=27@StorageOSVolumeSource! csi=28@CSIVolumeSource! "
        "ephemeral=29@EphemeralVolumeSource! image=30@ImageVolumeSource!"
    ),
    "VsphereVirtualDiskVolumeSource": "volumePath=1 fsType=2 storagePolicyName=3 storagePolicyID=4",
    "WeightedPodAffinityTerm": "weight=1i podAffinityTerm=2@PodAffinityTerm",
    "WindowsSecurityContextOptions": (
        "gmsaCredentialSpecName=1s! gmsaCredentialSpec=2s! runAsUserName=3s! hostProcess=4b!"
    ),
}

# OpenAPI package of each message outside core/v1 (``io.k8s.api.core.v1``): schema names are
# ``<package>.<Message>``, as the API server names its definitions.
PACKAGES = {
    "AggregationRule": "io.k8s.api.rbac.v1",
    "ClusterRole": "io.k8s.api.rbac.v1",
    "ClusterRoleBinding": "io.k8s.api.rbac.v1",
    "Deployment": "io.k8s.api.apps.v1",
    "DeploymentSpec": "io.k8s.api.apps.v1",
    "DeploymentStrategy": "io.k8s.api.apps.v1",
    "FieldSelectorAttributes": "io.k8s.api.authorization.v1",
    "FieldSelectorRequirement": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "HTTPIngressPath": "io.k8s.api.networking.v1",
    "HTTPIngressRuleValue": "io.k8s.api.networking.v1",
    "IPBlock": "io.k8s.api.networking.v1",
    "Ingress": "io.k8s.api.networking.v1",
    "IngressBackend": "io.k8s.api.networking.v1",
    "IngressRule": "io.k8s.api.networking.v1",
    "IngressRuleValue": "io.k8s.api.networking.v1",
    "IngressServiceBackend": "io.k8s.api.networking.v1",
    "IngressSpec": "io.k8s.api.networking.v1",
    "IngressTLS": "io.k8s.api.networking.v1",
    "Job": "io.k8s.api.batch.v1",
    "JobSpec": "io.k8s.api.batch.v1",
    "LabelSelector": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "LabelSelectorAttributes": "io.k8s.api.authorization.v1",
    "LabelSelectorRequirement": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "Lease": "io.k8s.api.coordination.v1",
    "LeaseSpec": "io.k8s.api.coordination.v1",
    "ManagedFieldsEntry": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "NetworkPolicy": "io.k8s.api.networking.v1",
    "NetworkPolicyEgressRule": "io.k8s.api.networking.v1",
    "NetworkPolicyIngressRule": "io.k8s.api.networking.v1",
    "NetworkPolicyPeer": "io.k8s.api.networking.v1",
    "NetworkPolicyPort": "io.k8s.api.networking.v1",
    "NetworkPolicySpec": "io.k8s.api.networking.v1",
    "NonResourceAttributes": "io.k8s.api.authorization.v1",
    "ObjectMeta": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "OwnerReference": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "PodDisruptionBudget": "io.k8s.api.policy.v1",
    "PodDisruptionBudgetSpec": "io.k8s.api.policy.v1",
    "PodFailurePolicy": "io.k8s.api.batch.v1",
    "PodFailurePolicyOnExitCodesRequirement": "io.k8s.api.batch.v1",
    "PodFailurePolicyOnPodConditionsPattern": "io.k8s.api.batch.v1",
    "PodFailurePolicyRule": "io.k8s.api.batch.v1",
    "PolicyRule": "io.k8s.api.rbac.v1",
    "PriorityClass": "io.k8s.api.scheduling.v1",
    "ResourceAttributes": "io.k8s.api.authorization.v1",
    "Role": "io.k8s.api.rbac.v1",
    "RoleBinding": "io.k8s.api.rbac.v1",
    "RoleRef": "io.k8s.api.rbac.v1",
    "RollingUpdateDeployment": "io.k8s.api.apps.v1",
    "SelfSubjectAccessReview": "io.k8s.api.authorization.v1",
    "SelfSubjectAccessReviewSpec": "io.k8s.api.authorization.v1",
    "SelfSubjectReview": "io.k8s.api.authentication.v1",
    "ServiceBackendPort": "io.k8s.api.networking.v1",
    "Subject": "io.k8s.api.rbac.v1",
    "SuccessPolicy": "io.k8s.api.batch.v1",
    "SuccessPolicyRule": "io.k8s.api.batch.v1",
}

# Strategic merge patch tags (``patchStrategy``/``patchMergeKey`` of the Go types):
# ``<Message>.<field>`` -> ``<strategies>[:<mergeKey>]``. Lists not listed here are atomic.
# https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
PATCH = {
    "Container.env": "merge:name",
    "Container.ports": "merge:containerPort",
    "Container.volumeDevices": "merge:devicePath",
    "Container.volumeMounts": "merge:mountPath",
    "DeploymentSpec.strategy": "retainKeys",
    "EphemeralContainerCommon.env": "merge:name",
    "EphemeralContainerCommon.ports": "merge:containerPort",
    "EphemeralContainerCommon.volumeDevices": "merge:devicePath",
    "EphemeralContainerCommon.volumeMounts": "merge:mountPath",
    "ObjectMeta.finalizers": "merge",
    "ObjectMeta.ownerReferences": "merge:uid",
    "PodDisruptionBudgetSpec.selector": "replace",
    "PodSpec.containers": "merge:name",
    "PodSpec.ephemeralContainers": "merge:name",
    "PodSpec.hostAliases": "merge:ip",
    "PodSpec.imagePullSecrets": "merge:name",
    "PodSpec.initContainers": "merge:name",
    "PodSpec.resourceClaims": "merge,retainKeys:name",
    "PodSpec.schedulingGates": "merge:name",
    "PodSpec.topologySpreadConstraints": "merge:topologyKey",
    "PodSpec.volumes": "merge,retainKeys:name",
    "ServiceAccount.secrets": "merge:name",
    "ServiceSpec.ports": "merge:port",
}
